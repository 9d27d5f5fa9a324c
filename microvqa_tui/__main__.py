from microvqa_tui.cli import main

main()
