print("microbench: being written")
