//! Stored data as files people open elsewhere. Pure: values in, documents out; the API and
//! the command line decide how to deliver them.

pub mod document;
pub mod docx;
#[cfg(feature = "pdf")]
pub mod pdf;
pub mod transcript;
