"""Network drivers: none and host now; the bridge comes with the network drivers issue."""
