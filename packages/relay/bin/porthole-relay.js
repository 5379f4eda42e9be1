#!/usr/bin/env node
// The command as installed: a fixed file, so that package managers can link it before the
// build has run.
import '../dist/cli.js';
