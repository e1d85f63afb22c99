//! `fusefs`: the FUSE mount through `store`. Built in the FUSE issue; nothing here yet.
