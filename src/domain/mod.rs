//! Pure domain logic: grading and input validation. No I/O here.

pub mod grading;
pub mod validation;
