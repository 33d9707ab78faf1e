// Compiled only so that the shared precompiled header has a target that owns it.
