"""One hook module per governed library; each declares the version range it supports."""
