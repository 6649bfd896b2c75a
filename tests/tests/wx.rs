//! W^X, proved on the process's own memory map: no mapping is ever writable and executable
//! while real modules are loaded and unloaded, and unloading unmaps each image whole (nothing
//! of its address range stays mapped). Alone in its test binary, so that no other test maps
//! memory meanwhile.

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

/// Whether any mapping of this process overlaps `start..end`.
fn mapped(start: u64, end: u64) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.split_once('-'))
        .filter_map(|(a, b)| {
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .any(|(a, b)| a < end && start < b)
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
            let info = kernel.module_info(id).unwrap();
            bases.push((id, info.base, info.base + info.size));
            assert_eq!(writable_and_executable(), Vec::<String>::new());
        }
    }
    assert!(bases.len() >= 2);
    for &(id, base, end) in &bases {
        assert!(mapped(base, end));
        kernel.unload(id).unwrap();
        assert!(
            !mapped(base, end),
            "{base:#x}..{end:#x} still mapped after unload"
        );
        assert_eq!(writable_and_executable(), Vec::<String>::new());
    }
}
