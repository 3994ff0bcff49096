//! Pure domain logic: grading, input validation, and the TechEmpower
//! benchmark's reference data and rules. No I/O here.

pub mod grading;
pub mod techempower;
pub mod validation;
