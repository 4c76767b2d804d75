from lifecycle_devstack.stack import main

main()
