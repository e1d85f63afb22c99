//! What the vault tests share.

pub use vault::rng::SysRng;
