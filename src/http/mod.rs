//! HTTP leaves shared by every handler: response builders, URL path rules and static
//! files. Nothing here knows the router or the handlers that use it.

pub mod open_streams;
pub mod path;
pub mod response;
pub mod static_files;
