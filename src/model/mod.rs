//! The types the stages hand each other: a decoded batch, a series' labels and id, the stale
//! marker, remediation actions, approval links, the wall clock. A leaf: it imports no other layer, so every stage may
//! depend on it and none of them on each other just to name a shared type.

pub mod action;
pub mod batch;
pub mod clock;
pub mod kind;
pub mod labels;
pub mod links;
pub mod rca;
pub mod symbols;

/// Prometheus' staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A series' public id: the 64-bit hash of its sorted label set, as 16 hex digits.
pub fn series_id(hash: u64) -> String {
    format!("{hash:016x}")
}
