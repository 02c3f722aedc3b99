//! The scheduler: the Chinese calendar, care rules and the generation of visits. Pure
//! logic over plain data; the server loads, calls and writes.
