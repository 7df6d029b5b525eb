from roofsim.cli import main

raise SystemExit(main())
