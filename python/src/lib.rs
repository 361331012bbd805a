//! `pike._pike`: the Python extension over the Rust core. The Python
//! package `pike` (beside this crate) re-exports it with the original
//! library's interface classes and the `pike.compat` modules.
//!
//! Everything that blocks releases the GIL and wakes every 50 ms to let
//! Python handle signals; Python converter code runs only on a converter
//! thread that holds no lock of the core (see `pyconv`).

mod connector;
mod events;
mod primitives;
mod pyconv;

use pyo3::prelude::*;

#[pymodule]
fn _pike(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<connector::PyConnector>()?;
    m.add_class::<connector::PyReconnect>()?;
    m.add(
        "ConnectorStopped",
        m.py().get_type::<connector::ConnectorStopped>(),
    )?;
    m.add_class::<events::Connection>()?;
    m.add_class::<events::Event>()?;
    m.add_class::<events::FinishConnectEvent>()?;
    m.add_class::<events::FinishDisconnectEvent>()?;
    m.add_class::<events::RemoteConnectEvent>()?;
    m.add_class::<events::RemoteDisconnectEvent>()?;
    m.add_class::<events::MessageReceivedEvent>()?;
    m.add_class::<events::RejectedMessageEvent>()?;
    m.add_class::<primitives::Primitives>()?;
    m.add_class::<primitives::PrimitiveConverter>()?;
    m.add_class::<primitives::FileConverter>()?;
    Ok(())
}
