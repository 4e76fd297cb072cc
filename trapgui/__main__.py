from trapgui.app import main

raise SystemExit(main())
