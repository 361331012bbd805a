//! Pike from async code: an echo server and a client as tokio tasks,
//! using `connect_async`, `recv_async`, `send_async`, the `events` stream
//! and `shutdown_async`. No thread blocks; Pike's network thread runs
//! beside the runtime.
//!
//! ```text
//! cargo run --example async_echo
//! ```

use futures::StreamExt;
use pike::converters::StringConverter;
use pike::{Connector, Delivery, Event, ShutdownMode};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Connector::builder(StringConverter::new())
        .listen("127.0.0.1:0")
        .spawn()?;
    let addr = server.local_addr().expect("listening");
    let echo = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut events = server.events();
            while let Some(event) = events.next().await {
                match event {
                    Event::RemoteConnect(peer) => peer.finish_accept(Delivery::Merged),
                    Event::MessageReceived(m) => {
                        let reply = m.message.to_uppercase();
                        server.send_async(&m.connection, reply).await.ok();
                    }
                    _ => {}
                }
            }
        })
    };

    let client = Connector::builder(StringConverter::new()).spawn()?;
    // The connect's outcome is the future's (no FinishConnect event).
    let conn = client.connect_async(addr, Delivery::Merged).await?;
    for word in ["hello", "from", "async", "pike"] {
        client.send_async(&conn, word.to_owned()).await?;
    }
    let mut replies = 0;
    while replies < 4 {
        match client.recv_async().await {
            Ok(Event::MessageReceived(m)) => {
                println!("{}", m.message);
                replies += 1;
            }
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    client.shutdown_async(ShutdownMode::FinishQueue).await;
    server.shutdown_async(ShutdownMode::Now).await;
    echo.await?;
    Ok(())
}
