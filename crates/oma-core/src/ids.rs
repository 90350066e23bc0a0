//! Prefixed, time-ordered identifiers (`agent_…`, `sesn_…`).
//!
//! The body is 128 bits: 48 bits of milliseconds since the epoch followed by 80 random bits,
//! written as 22 base62 digits. Base62 digits are in ASCII order, so ids sort by creation time
//! as plain strings in both databases.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 22;

pub const AGENT: &str = "agent";
pub const ENVIRONMENT: &str = "env";
pub const SESSION: &str = "sesn";
pub const EVENT: &str = "sevt";
pub const THREAD: &str = "sthr";
pub const RESOURCE: &str = "sesrsc";
pub const VAULT: &str = "vlt";
pub const CREDENTIAL: &str = "vcrd";
pub const MEMORY_STORE: &str = "memstore";
pub const MEMORY: &str = "mem";
pub const MEMORY_VERSION: &str = "memver";
pub const SKILL: &str = "skill";
pub const SKILL_VERSION: &str = "skillver";
pub const FILE: &str = "file";
pub const TENANT: &str = "tnt";
pub const API_KEY: &str = "apikey";
pub const REQUEST: &str = "req";
pub const OUTCOME: &str = "outc";
pub const WORK: &str = "work";
pub const ENVIRONMENT_KEY: &str = "envkey";

/// A new id `prefix_<22 base62 digits>`.
pub fn new_id(prefix: &str) -> String {
    let millis = (crate::time::now_micros() / 1000) as u128;
    let mut random = [0u8; 10];
    fill_random(&mut random);
    let mut value: u128 = millis << 80;
    for (i, b) in random.iter().enumerate() {
        value |= (*b as u128) << (8 * (9 - i));
    }
    let mut body = [b'0'; BODY_LEN];
    for slot in body.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    let mut out = String::with_capacity(prefix.len() + 1 + BODY_LEN);
    out.push_str(prefix);
    out.push('_');
    // The alphabet is ASCII, so every byte is a char.
    out.extend(body.iter().map(|b| *b as char));
    out
}

/// Fills `buf` from the operating system's generator. A machine without one cannot run oma
/// safely at all, so failure aborts loudly rather than producing predictable ids or keys.
pub fn fill_random(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        panic!("the operating system random generator failed: {e}");
    }
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fill_random(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_fixed_width_and_time_ordered() {
        let a = new_id(AGENT);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id(AGENT);
        assert!(a.starts_with("agent_"));
        assert_eq!(a.len(), "agent_".len() + BODY_LEN);
        assert!(a < b, "{a} should sort before {b}");
    }

    #[test]
    fn ids_are_unique() {
        let set: std::collections::HashSet<_> = (0..10_000).map(|_| new_id(EVENT)).collect();
        assert_eq!(set.len(), 10_000);
    }
}
