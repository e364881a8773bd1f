#!/usr/bin/env bash
# System packages the test bed needs: a real OpenSSH server, Lmod, PAM one-time codes, a real
# single-node Slurm (slurm-wlm, munge), the login shells users have (tcsh, zsh, fish), and the libraries Qt
# needs to run offscreen. Installs them when run as root on a Debian/Ubuntu machine; otherwise says what is
# missing and leaves the machine alone.
set -euo pipefail
packages=(openssh-server openssh-client lmod libpam-oath oathtool python3 python3-venv openssl procps util-linux strace
          xvfb xauth libegl1 libgl1 libopengl0 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1
          libglib2.0-0 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 fonts-dejavu-core desktop-file-utils
          dbus-daemon gnome-keyring git tcsh zsh fish slurm-wlm munge)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "The SSH test bed needs these packages (install them as root): ${missing[*]}" >&2
  echo "Without them the SSH tests are skipped (outside CI)." >&2
fi
