#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod arena;
pub mod arenas;
mod atomic;
pub mod backend;
pub mod bitmap;
pub mod compact;
mod config;
mod error;
mod front;
mod global;
mod heap;
mod memid;
mod meta;
pub mod sync;
#[cfg(test)]
mod testkit;
pub mod tiny;

pub use arenas::{ArenaStats, Arenas, BlockState, ReserveError};
#[cfg(all(unix, feature = "unix"))]
pub use backend::Mmap;
#[cfg(target_arch = "wasm32")]
pub use backend::WasmGrow;
pub use backend::{OsBackend, Region, Sbrk, StaticBuffer};
pub use compact::Compact;
pub use config::{Config, EagerCommit};
pub use error::{ErrorHook, FreeError, FreeErrorKind};
pub use global::{Quarry, Stats};
pub use memid::{Allocation, ArenaId, MemId, MemKind};
pub use meta::MetaArea;
pub use sync::{NoLock, RawLock, SpinLock};
pub use tiny::Tiny;
