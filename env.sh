# Enter the USER environment:  source ./env.sh
# Activates .venv (ROS 2 from wheels, or the system ROS when one was sourced before setup) and the
# colcon overlay in install/, and puts the `user-rl` CLI on PATH. Works in bash and zsh.

if [ -n "${BASH_SOURCE:-}" ]; then _user_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
elif [ -n "${ZSH_VERSION:-}" ]; then _user_root="$(cd "$(dirname "${(%):-%x}")" && pwd)"
else _user_root="$(pwd)"; fi

if [ ! -x "$_user_root/.venv/bin/python" ]; then
  echo "USER: no .venv yet; run ./setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi

# shellcheck disable=SC1091
VIRTUAL_ENV_DISABLE_PROMPT=${VIRTUAL_ENV_DISABLE_PROMPT:-} . "$_user_root/.venv/bin/activate"

if [ -z "${ROS_DISTRO:-}" ] || [ "${USER_ROS_FROM_WHEELS:-}" = 1 ]; then
  # ROS 2 from pip wheels: the venv is the ament prefix.
  export USER_ROS_FROM_WHEELS=1
  case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
    export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
  case ":${CMAKE_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
    export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;; esac
  export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
fi

if [ "${1:-}" != "--no-overlay" ] && [ -d "$_user_root/install" ]; then
  if [ -n "${ZSH_VERSION:-}" ]; then . "$_user_root/install/local_setup.zsh"
  else . "$_user_root/install/local_setup.bash"; fi
  case ":$PATH:" in *":$_user_root/install/user_learner/lib/user_learner:"*) ;; *)
    export PATH="$_user_root/install/user_learner/lib/user_learner:$PATH" ;; esac
fi
export USER_ROOT="$_user_root"
unset _user_root
