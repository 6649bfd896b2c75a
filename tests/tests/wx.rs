//! W^X, proved on the process's own memory map: no mapping is ever writable and executable
//! while real modules are loaded and unloaded, and unloading unmaps each image. Alone in its
//! test binary, so that no other test maps memory meanwhile.

#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use dlkm_loader::{Kernel, LoadError};
use dlkm_tests::host_corpus_dir;

fn object(variant: &str, file: &str) -> std::path::PathBuf {
    host_corpus_dir().join(variant).join(file)
}

/// Mappings of this process that are writable and executable at once.
fn writable_and_executable() -> Vec<String> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| {
            let perms = l.split_whitespace().nth(1).unwrap_or("");
            perms.contains('w') && perms.contains('x')
        })
        .map(String::from)
        .collect()
}

fn mapped(base: u64) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| l.split('-').next())
        .any(|start| u64::from_str_radix(start, 16) == Ok(base))
}

#[test]
fn images_are_never_writable_and_executable_and_unload_unmaps_them() {
    let kernel = Kernel::native().unwrap();
    let mut bases = Vec::new();
    for variant in ["gcc-pie", "gcc-nopic", "clang"] {
        for file in ["sqlite.o", "lua.o"] {
            let path = object(variant, file);
            let name = format!("{variant}-{file}");
            let bytes = std::fs::read(&path).unwrap();
            let id = kernel.load_bytes(&name, &bytes);
            let id = match id {
                Ok(id) => id,
                // The same program twice in one kernel exports the same names.
                Err(LoadError::DuplicateExport { .. }) => continue,
                Err(e) => panic!("{name}: {e}"),
            };
            bases.push((id, kernel.module_info(id).unwrap().base));
            assert_eq!(writable_and_executable(), Vec::<String>::new());
        }
    }
    assert!(bases.len() >= 2);
    for (id, base) in bases {
        assert!(mapped(base));
        kernel.unload(id).unwrap();
        assert!(!mapped(base), "{base:#x} still mapped after unload");
        assert_eq!(writable_and_executable(), Vec::<String>::new());
    }
}
