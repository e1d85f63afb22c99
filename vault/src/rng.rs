//! The operating system's randomness, for what must be random: seeds, vault keys and ids, salts,
//! and HPKE's ephemeral keys.

/// `getrandom` as the RNG HPKE takes.
pub struct SysRng;

impl hpke::rand_core::RngCore for SysRng {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(random())
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(random())
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        getrandom::fill(dst).expect("the operating system's randomness");
    }
}

impl hpke::rand_core::CryptoRng for SysRng {}

/// `N` random bytes.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's randomness");
    b
}
