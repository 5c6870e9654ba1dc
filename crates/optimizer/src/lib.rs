//! Prompt optimization over stored trajectories (work in progress).
