//! How each converter's messages are typed in and printed.

use bytes::Bytes;

/// A message type the command line can read from a line and print.
pub(crate) trait LineMessage: Sized + Clone + Send + 'static {
    /// Parses one line of input.
    fn parse(line: &str) -> Result<Self, String>;
    /// Shows a received message on one line.
    fn show(&self) -> String;
}

impl LineMessage for String {
    fn parse(line: &str) -> Result<Self, String> {
        Ok(line.to_owned())
    }
    fn show(&self) -> String {
        self.clone()
    }
}

impl LineMessage for Bytes {
    fn parse(line: &str) -> Result<Self, String> {
        Ok(Bytes::copy_from_slice(line.as_bytes()))
    }
    fn show(&self) -> String {
        String::from_utf8_lossy(self).into_owned()
    }
}

impl LineMessage for i64 {
    fn parse(line: &str) -> Result<Self, String> {
        line.trim()
            .parse()
            .map_err(|e| format!("not an integer ({e}): {line:?}"))
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl LineMessage for f64 {
    fn parse(line: &str) -> Result<Self, String> {
        line.trim()
            .parse()
            .map_err(|e| format!("not a float ({e}): {line:?}"))
    }
    fn show(&self) -> String {
        format!("{self:?}")
    }
}

impl LineMessage for bool {
    fn parse(line: &str) -> Result<Self, String> {
        match line.trim() {
            "True" | "true" | "1" => Ok(true),
            "False" | "false" | "0" => Ok(false),
            _ => Err(format!("not a bool (True or False): {line:?}")),
        }
    }
    fn show(&self) -> String {
        (if *self { "True" } else { "False" }).to_owned()
    }
}
