//! Integration tests of dlkm live in tests/tests/.
