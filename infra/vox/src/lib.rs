//! The parts of `vox` that tests call in process.

pub mod event_source;
