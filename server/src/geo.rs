//! Distances on the ground: the scheduler's, shared with the assignment of visits.

pub use scheduler::geo::*;
