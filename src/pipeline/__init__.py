"""The workflow's shared helpers (not part of the library `gfe`, not shipped with it): the
config's checks and defaults (`config`), what the workflow runs and where each file goes
(`plan`), every job's identity and record (`identity`), what every script does on start and
exit (`common`), the claims and their verdicts (`claims`), and the figures' style and panels
(`plotstyle`, `plotpanels`). The scripts in src/scripts/ import these; the library imports
none of them."""
