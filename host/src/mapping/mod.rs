//! Attribute mappings: how a source object's attributes become the target
//! attributes a connector is asked to write.
//!
//! [`expr`] is the Entra-compatible expression language mappings are
//! written in.

pub mod expr;
