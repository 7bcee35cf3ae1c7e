"""The upload front-end: a local tree in the pull layout → the target project's resources."""
