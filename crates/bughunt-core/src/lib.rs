//! bughunt's engine: the embedded catalog, the demos, the drawings and the validator.
//! The `bughunt` binary is a thin command line over this crate.

pub mod catalog;
pub mod demo;
pub mod demos;
pub mod diagram;
pub mod files;
pub mod foreign;
pub mod generate;
pub mod home;
pub mod html;
pub mod hunt;
pub mod huntcrate;
pub mod memory;
pub mod pages;
pub mod process;
pub mod schedules;
pub mod select;
pub mod sites;
pub mod state;
pub mod svg;
pub mod text;
pub mod topics;
pub mod validate;
pub mod watch;
