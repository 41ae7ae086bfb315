from satworks.devnodes.bitcoind.server import main

main()
