// placeholder: the CLI is being written
print("squtun")
