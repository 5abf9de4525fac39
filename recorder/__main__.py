from recorder.cli.main import main

main()
