//! What the vault tests share.

/// The operating system's randomness, for HPKE's ephemeral keys.
pub struct SysRng;

impl hpke::rand_core::RngCore for SysRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        getrandom::fill(dst).expect("the OS's randomness");
    }
}

impl hpke::rand_core::CryptoRng for SysRng {}
