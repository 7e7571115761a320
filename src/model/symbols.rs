//! Label strings shared by every series that uses them: `cluster="prod-eu-central-1"` is held
//! once for the process, and a series' label set ([`super::labels`]) names it with a 2-byte id.
//!
//! The table only grows (ids must stay valid while any series may hold them, and a refcount
//! per use would cost more than the strings), so what it takes is bounded: at most
//! [`MAX_SYMBOLS`] strings of at most [`MAX_LEN`] bytes, [`MAX_BYTES`] bytes in all, and at most
//! [`MAX_VALUES_PER_NAME`] values of any one label name, so a high-cardinality label (`pod`
//! under churn, a request id) stops being interned after its first values and is stored inline
//! by the series instead. Reads are lock-free (an id is an index into slots written once);
//! interning takes a lock, but only when a series is created.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};

/// Ids are `u16`; `u16::MAX` is the label set's "inline string follows" marker.
pub const MAX_SYMBOLS: usize = u16::MAX as usize;
/// Longer strings are cheaper inline than as a shared entry no other series may use.
pub const MAX_LEN: usize = 96;
pub const MAX_BYTES: usize = 4 << 20;
pub const MAX_VALUES_PER_NAME: u32 = 4096;

static SLOTS: [OnceLock<&'static str>; MAX_SYMBOLS] = [const { OnceLock::new() }; MAX_SYMBOLS];
static HELD_BYTES: AtomicUsize = AtomicUsize::new(0);

type Hasher = xxhash_rust::xxh3::Xxh3DefaultBuilder;

#[derive(Default)]
struct Index {
    ids: HashMap<&'static str, u16, Hasher>,
    /// Distinct values interned per label-name id.
    values_per_name: HashMap<u16, u32>,
    bytes: usize,
}

fn index() -> &'static RwLock<Index> {
    static INDEX: OnceLock<RwLock<Index>> = OnceLock::new();
    INDEX.get_or_init(Default::default)
}

/// The string of an id handed out by [`intern_label_set`].
pub fn resolve(id: u16) -> Option<&'static str> {
    SLOTS.get(usize::from(id))?.get().copied()
}

/// Bytes the table holds (strings, slots in use and index entries), for the memory figures.
pub fn held_bytes() -> usize {
    HELD_BYTES.load(Ordering::Relaxed)
}

/// Ids for a label set's names and values (`None` where the string stays inline), with one
/// read lock for a set whose strings are all known and one write lock otherwise: a new series
/// pays two lock acquisitions, not one per string.
pub fn intern_label_set(
    pairs: &[(&str, &str)],
    ids: &mut [(Option<u16>, Option<u16>)],
    with_values: bool,
) {
    let lock = index();
    let mut complete = true;
    {
        let index = lock.read().unwrap_or_else(|p| p.into_inner());
        for (&(name, value), out) in pairs.iter().zip(ids.iter_mut()) {
            out.0 = index.ids.get(name).copied();
            out.1 = if with_values {
                index.ids.get(value).copied()
            } else {
                None
            };
            complete &= out.0.is_some() && (!with_values || out.1.is_some());
        }
    }
    if complete {
        return;
    }
    let mut index = lock.write().unwrap_or_else(|p| p.into_inner());
    for (&(name, value), out) in pairs.iter().zip(ids.iter_mut()) {
        if out.0.is_none() {
            out.0 = index.intern(name, None);
        }
        if with_values
            && out.1.is_none()
            && let Some(name_id) = out.0
        {
            out.1 = index.intern(value, Some(name_id));
        }
    }
}

impl Index {
    fn intern(&mut self, s: &str, value_of: Option<u16>) -> Option<u16> {
        if let Some(&id) = self.ids.get(s) {
            return Some(id);
        }
        if s.len() > MAX_LEN {
            return None;
        }
        // The string, its slot's pointer and its index entry.
        let cost = s.len() + 2 * std::mem::size_of::<&str>() + 8;
        let next = self.ids.len();
        if next >= MAX_SYMBOLS || self.bytes + cost > MAX_BYTES {
            return None;
        }
        if let Some(name_id) = value_of {
            let count = self.values_per_name.entry(name_id).or_insert(0);
            if *count >= MAX_VALUES_PER_NAME {
                return None;
            }
            *count += 1;
        }
        let held: &'static str = Box::leak(s.to_owned().into_boxed_str());
        SLOTS[next].set(held).ok()?;
        self.ids.insert(held, next as u16);
        self.bytes += cost;
        HELD_BYTES.store(self.bytes, Ordering::Relaxed);
        Some(next as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of one label pair, through the path a new series takes.
    fn pair(name: &str, value: &str) -> (Option<u16>, Option<u16>) {
        let mut ids = [(None, None)];
        intern_label_set(&[(name, value)], &mut ids, true);
        ids[0]
    }

    #[test]
    fn the_same_string_gets_the_same_id_and_resolves_back() {
        let (a, v) = pair("symbols_test_name", "prod");
        let (a, v) = (a.unwrap(), v.unwrap());
        assert_eq!(pair("symbols_test_name", "prod"), (Some(a), Some(v)));
        assert_eq!(resolve(a), Some("symbols_test_name"));
        assert_eq!(resolve(v), Some("prod"));
        assert!(pair(&"x".repeat(MAX_LEN + 1), "v").0.is_none());
    }

    #[test]
    fn a_high_cardinality_name_stops_being_interned() {
        let name = "symbols_test_request_id";
        let interned = (0..MAX_VALUES_PER_NAME + 10)
            .filter(|i| pair(name, &format!("req-{i}")).1.is_some())
            .count();
        assert_eq!(interned, MAX_VALUES_PER_NAME as usize);
        // Values interned before the cap keep their ids.
        assert!(pair(name, "req-0").1.is_some());
        assert!(pair(name, "req-999999").1.is_none());
    }
}
