"""Installer tools, run on the installer's laptop: build, flash and commission nodes, scan a
bus, and run a walk test."""
