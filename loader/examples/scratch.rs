use dlkm_loader::{Arg, Kernel};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let k = Kernel::native().unwrap();
    let mut i = 1;
    while i < args.len() {
        if args[i].ends_with(".o") {
            match k.load_path(&args[i]) {
                Ok(id) => {
                    let m = k.module_info(id).unwrap();
                    println!(
                        "loaded {} base={:#x} stubs={} relaxed={} copied={:?}",
                        m.name, m.base, m.stubs_used, m.got_relaxed, m.copied
                    )
                }
                Err(e) => {
                    println!("error: {e}");
                    return;
                }
            }
        } else {
            let f = &args[i];
            let mut a = vec![];
            i += 1;
            while i < args.len() && args[i] != "," {
                let s = &args[i];
                a.push(if let Ok(n) = s.parse::<i64>() {
                    Arg::Int(n as u64)
                } else {
                    Arg::Str(s.clone())
                });
                i += 1;
            }
            match k.call_symbol(f, &a) {
                Ok(v) => println!("{f} = {}", v as i64),
                Err(e) => println!("error: {e}"),
            }
        }
        i += 1;
    }
}
