#!/usr/bin/env bash
# Builds fixture images on demand and prints their cache directories: scripts/fixtures.sh NAME...
# (base nginx python static multilayer fat). See tests/fixtures/build.sh for the cache layout.
exec bash "$(dirname "$0")/../tests/fixtures/build.sh" "$@"
