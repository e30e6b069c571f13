"""Delivery to partners: webhook batches and streams, built on the store and the built-in bots.

Importing this package registers nothing: the runtime's composer (the CLI's ``leo run``, see
`leo_runtime.cli.compose`) hands the runtime its system pipelines (`system.SystemPipeline`).
"""
