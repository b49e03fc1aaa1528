from tuimeter.cli import main

raise SystemExit(main())
