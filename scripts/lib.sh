# Shared by scripts/serve and scripts/test: installs what building Portcullis needs on Debian.

# The Debian packages the build links against or runs: samael's xmlsec feature needs libxmlsec1
# (with its OpenSSL backend) and libxml2, found through pkg-config; its bindgen step needs libclang.
BUILD_PACKAGES="pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang-dev"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the packages given that are not installed yet (and runs apt-get update only then).
ensure_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: install a Rust toolchain (https://rustup.rs), then run this again" >&2
    exit 1
  fi
}
