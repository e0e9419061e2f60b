//! `migrations!("dir")`: the `*.json` files of a directory, embedded at compile time.

use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::LitStr;

/// Expands to `tenantry::migrate::Migrations::from_files(&[(id, include_str!(path)), ..])`,
/// the files sorted by name. `include_str!` makes a change to a file rebuild the crate;
/// a new file needs a rebuild (`cargo:rerun-if-changed=<dir>` in a build script does it).
pub(crate) fn expand(input: LitStr) -> syn::Result<TokenStream> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| syn::Error::new(input.span(), "CARGO_MANIFEST_DIR is not set"))?;
    let dir = Path::new(&manifest).join(input.value());
    let files = json_files(&dir).map_err(|e| {
        syn::Error::new(
            input.span(),
            format!("cannot read migrations directory {}: {e}", dir.display()),
        )
    })?;
    let mut entries = Vec::with_capacity(files.len());
    for file in files {
        let id = file
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| {
                syn::Error::new(input.span(), format!("{} is not UTF-8", file.display()))
            })?
            .to_owned();
        let path = file.to_str().ok_or_else(|| {
            syn::Error::new(input.span(), format!("{} is not UTF-8", file.display()))
        })?;
        let path = LitStr::new(path, Span::call_site());
        entries.push(quote! { (#id, ::core::include_str!(#path)) });
    }
    Ok(quote! {
        ::tenantry::migrate::Migrations::from_files(&[#(#entries),*])
    })
}

fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
