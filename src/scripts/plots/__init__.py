"""The figures' scripts, one per plot rule: each reads result tables (never models) and draws
one figure, in the style of `pipeline.plotstyle`."""
