//! Mapping the metrics table into memory shared between processes: a
//! `MAP_SHARED` mapping of a memfd, inherited across `fork`, that a
//! re-executed worker maps again from the descriptor. The only `unsafe` of
//! the table.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

/// A type that may be placed in a zero-filled shared mapping and read
/// through a `&'static` reference in several processes at once.
///
/// # Safety
/// Implement it only for types that are `repr(C)`, for which all-zero bytes
/// are a valid value, that hold no pointer (addresses differ between
/// processes), and whose every field is read and written through atomics
/// (other processes write them concurrently): aggregates of `AtomicU64`.
#[allow(unsafe_code)]
pub unsafe trait SharedTable: Sync {}

/// A zero-filled `T` in a shared mapping of a new memfd (close-on-exec;
/// the supervisor clears that flag in a child that it re-executes).
pub fn shared_memfd<T: SharedTable>() -> std::io::Result<(&'static T, OwnedFd)> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create("quizbench-metrics", MFdFlags::MFD_CLOEXEC)?;
    nix::unistd::ftruncate(&fd, std::mem::size_of::<T>() as i64)?;
    let table = map_shared::<T>(fd.as_fd())?;
    Ok((table, fd))
}

/// Maps a file holding exactly one `T` (shared, read-write) for the rest of
/// the process.
#[allow(unsafe_code)]
pub fn map_shared<T: SharedTable>(fd: BorrowedFd<'_>) -> std::io::Result<&'static T> {
    use nix::sys::mman::{mmap, MapFlags, ProtFlags};
    let size = std::mem::size_of::<T>();
    let actual = nix::sys::stat::fstat(fd)?.st_size;
    if actual != size as i64 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("shared metrics table is {actual} bytes, this build expects {size}"),
        ));
    }
    let len = std::num::NonZeroUsize::new(size).expect("non-empty table");
    // SAFETY: the mapping is new, so it aliases no Rust object; it is never
    // unmapped, so the reference is valid for 'static. The file has exactly
    // size_of::<T>() bytes (checked above), zero-filled at creation and
    // written since only through `T`'s atomics, and `T: SharedTable`
    // guarantees that such bytes are a valid `T`.
    unsafe {
        let ptr = mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )?;
        Ok(&*(ptr.as_ptr() as *const T))
    }
}
