use tests::*;
