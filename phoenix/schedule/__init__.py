"""Schedules: the recurring work phoenix.toml declares under [schedules], held by cron.

`entry` says what cron holds for a schedule, `cron` reads and writes where it holds it,
`install` makes cron hold exactly what the config declares, `listing` shows each schedule with
its next and last runs, and `run` is what cron calls.
"""
