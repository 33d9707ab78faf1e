# Sourced by the scripts: where the machine-wide cache lives and the tools' settings.
# FACETRAIN_CACHE holds the Python environment (torch) and the compiler cache, outside any
# clone, so fresh clones on the same machine reuse them.
FACETRAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export FACETRAIN_ROOT
export FACETRAIN_CACHE=${FACETRAIN_CACHE:-/opt/facetrain}
export FACETRAIN_VENV=${FACETRAIN_VENV:-$FACETRAIN_CACHE/venv}
export FACETRAIN_BUILD=${FACETRAIN_BUILD:-$FACETRAIN_ROOT/build}
export CCACHE_DIR=${CCACHE_DIR:-$FACETRAIN_CACHE/ccache}
export CCACHE_BASEDIR=$FACETRAIN_ROOT
# Needed for ccache to cache translation units compiled with a precompiled header.
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# mpirun as root, and more ranks than cores on small machines.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
