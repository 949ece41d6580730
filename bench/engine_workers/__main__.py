from bench.engine_workers.run import main

main()
