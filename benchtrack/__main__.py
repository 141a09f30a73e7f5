from benchtrack.cli import main

main()
