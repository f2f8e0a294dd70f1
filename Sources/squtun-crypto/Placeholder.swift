import COpenSSL
import Shared
