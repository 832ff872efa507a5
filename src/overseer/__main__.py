from overseer.cli import main

main()
