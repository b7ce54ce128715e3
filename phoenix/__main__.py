from phoenix.cli.app import run

run()
